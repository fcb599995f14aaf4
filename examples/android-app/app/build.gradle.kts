plugins {
    id("com.android.application") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.4.21"
}

android {
    namespace = "example.voiceactivity"
    compileSdk = 35
    defaultConfig {
        applicationId = "example.voiceactivity"
        minSdk = 24
        targetSdk = 35
    }
    // Models stay uncompressed in the APK, so Engine.fromFileDescriptor maps them in place (no copy to filesDir).
    androidResources { noCompress += "onnx" }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin { jvmToolchain(17) }

dependencies {
    // The AAR made by `cargo xtask build android`, and what its module brings (JNA, coroutines, ONNX Runtime).
    implementation(files("../../../android/build/outputs/aar/openautoglm-release.aar"))
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0")
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.29.0")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.7")
}
