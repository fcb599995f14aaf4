// Open-AutoGLM for Android: the idiomatic Kotlin layer (src/main/kotlin) over the uniffi bindings, with the native
// library per ABI in src/main/jniLibs. `cargo xtask build android` (needs the NDK) fills in both generated parts:
// build/generated/uniffi/android (bindings with android = true) and src/main/jniLibs/<abi>/libopenautoglm_ffi.so.
// Without Gradle or the Android SDK (as on the CI machines) the same sources are compiled and tested on the JVM by
// pom.xml, through `cargo xtask test`.
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.4.21"
}

// The newest onnxruntime-android on Maven Central that these machines know of (1.29.0, with ORT Java and the QNN AAR
// of that release); Maven Central has no 1.31.1 AAR, the version every other package here ships and tests. The
// engine refuses a runtime older than 1.22 at load with EngineException.RuntimeTooOld naming both versions.
val onnxruntimeVersion: String by extra { (findProperty("onnxruntimeVersion") as String?) ?: "1.29.0" }

android {
    namespace = "ai.openautoglm"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets["main"].apply {
        // src/android/kotlin holds what only Android has (logcat, assets); src/jvm/kotlin is the desktop JVM's.
        java.srcDirs("src/main/kotlin", "src/android/kotlin", "build/generated/uniffi/android")
        jniLibs.srcDirs("src/main/jniLibs")
    }
    // The Robolectric tests `cargo xtask test --only android` runs through Maven (robolectric/pom.xml).
    sourceSets["test"].java.srcDirs("src/robolectric/kotlin")
    sourceSets["test"].resources.srcDirs("src/robolectric/resources")
    testOptions.unitTests.isIncludeAndroidResources = true

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        // Both this AAR's consumers and onnxruntime-android ship libc++_shared.so.
        jniLibs.pickFirsts += "**/libc++_shared.so"
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // uniffi's Kotlin bindings call the native library through JNA; the @aar carries JNA's Android natives.
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0")
    // libonnxruntime.so with the NNAPI and XNNPACK providers; the engine opens it by name at run time.
    api("com.microsoft.onnxruntime:onnxruntime-android:$onnxruntimeVersion")
    compileOnly("androidx.annotation:annotation:1.9.1")
    testImplementation("junit:junit:4.13.2")
    testImplementation("org.robolectric:robolectric:4.17")
    testImplementation("org.jetbrains.kotlin:kotlin-test-junit:2.4.21")
}
